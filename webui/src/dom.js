// el(tag, props, ...children): one element; props set as properties where the element has
// them (textContent, never innerHTML), `dataset` merged, anything else as an attribute.
// Shared by the client (client/classroom.js) and the whiteboard (whiteboard.js); bundled.
export const el = (tag, props = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k in node) node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
};

"""Simulcast layer selection for one (subscriber, track): which layer is forwarded (sans-IO).

The allocator decides the layer a subscriber *should* get (``set_target``); the selector
decides, packet by packet, what it *does* get (``accept``). A decoder can only start on a
keyframe, so a change of layer (up, down, or a resume after a pause) is completed by the
first keyframe packet of the target layer; until then the current layer keeps flowing, so
the picture never freezes while waiting. A pause is immediate (nothing needs decoding).

Protocol with the caller (see ``PublishedTrack.on_rtp``)::

    if sel.set_target(layer):          # True: ask the publisher for a keyframe of `layer`
        request_keyframe(layer)
    ...per packet of `layer`:
    keyframe = sel.waiting and layer == sel.target and is_keyframe(...)  # only then
    if sel.accept(layer, keyframe):
        if switched: forwarder.resync()  # seq/ts stay continuous across the switch
        forward(packet)

Layers are indexed 0 (lowest) .. n-1; -1 means "nothing".
"""

from __future__ import annotations

from collections.abc import Callable


class LayerSelector:
    """Current/target layer state machine; ``accept`` is on the per-packet path."""

    __slots__ = ("_current", "target", "switches", "_gone", "_on_current")

    def __init__(self, on_current: Callable[[], None] | None = None) -> None:
        #: told when ``current`` changes (the subscription: its track's fan-out plans
        #: list the subscribers by their current layer)
        self._on_current = on_current
        #: layer being forwarded now; -1 = nothing (paused, not started, or layer gone)
        self._current = -1
        #: layer wanted; -1 = paused
        self.target = -1
        #: completed switches from one forwarded layer to another (not start/resume)
        self.switches = 0
        # layer that was current when it stopped arriving, so recovering from it onto
        # another layer counts as a switch (it was not a pause)
        self._gone = -1

    @property
    def waiting(self) -> bool:
        """True while a keyframe of ``target`` is needed (callers only then detect them)."""
        return self.target >= 0 and self.target != self.current

    def set_target(self, layer: int, at_once: bool = False) -> bool:
        """Choose the layer to receive; True when a keyframe of ``layer`` must be requested.

        Setting -1 pauses at once. Setting the current layer cancels a pending switch
        without a keyframe request. Re-setting the same pending target returns False (it was
        already requested; repeating requests is the keyframe throttle's business).
        ``at_once`` for a step down: stop forwarding the current layer now instead of at
        the lower layer's keyframe (the picture freezes until then). For a step down forced
        by a link that cannot carry the current layer: every packet of it sent while
        waiting would queue in front of the audio.
        """
        if layer < 0:
            self.target = self.current = self._gone = -1
            return False
        if at_once and 0 <= layer < self.current:
            self._gone = self.current
            self.current = -1
        if layer == self.target:
            return False
        self.target = layer
        return layer != self.current

    def accept(self, layer: int, keyframe: bool) -> bool:
        """Per packet of ``layer``: True to forward it.

        A keyframe of the target layer (while waiting) completes the switch: ``current``
        becomes ``target`` and True is returned; the caller must then ``resync`` its
        forwarder. ``keyframe`` is only meaningful for ``layer == target != current``.
        """
        if layer == self.current:
            return layer >= 0
        if keyframe and layer == self.target and layer >= 0:
            previous = self.current if self.current >= 0 else self._gone
            if previous >= 0 and previous != layer:
                self.switches += 1
            self.current = layer
            self._gone = -1
            return True
        return False

    def layer_gone(self, layer: int) -> None:
        """``layer`` stopped arriving (publisher turned it off): if current, forward nothing
        until a keyframe of the target arrives; the caller should pick a new target."""
        if layer == self.current and layer >= 0:
            self._gone = layer
            self.current = -1

    @property
    def current(self) -> int:
        return self._current

    @current.setter
    def current(self, layer: int) -> None:
        if layer != self._current:
            self._current = layer
            if self._on_current is not None:
                self._on_current()

    def __repr__(self) -> str:
        return f"LayerSelector(current={self.current}, target={self.target})"

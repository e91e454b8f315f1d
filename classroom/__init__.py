"""Classroom modules beside the media: polls (``classroom.polls``, sans-IO, fed actions and a
clock; the room owns them, the signalling session routes the ``poll_*`` messages); hand
raise, chat and engagement capture come next (issue #6)."""

"""Classroom modules beside the media: polls (``classroom.polls``, sans-IO, fed actions and a
clock); hand raise, chat and engagement capture come next (issue #6)."""

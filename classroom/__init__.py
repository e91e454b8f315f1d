"""The classroom above the media: :class:`classroom.room.Classroom` owns one media room
(:mod:`sfu.room`) and the tools around it (polls ``classroom.polls``, raised hands
``classroom.hands``, chat and reactions ``classroom.chat``, the recording and its policy);
:class:`classroom.rooms.Classrooms` is the server's set of them. Engagement capture and
session reports (``classroom.engagement``, ``classroom.reports``) read the event bus. The
tools are sans-IO (fed actions and a clock); the classroom is their thin adapter."""

"""The scheduler bridge: bookings become provisioned rooms, attendance is watched against
them, exceptions reach a persisted queue, reminders and notifications go out
(docs/scheduling.md).

Sans-IO cores (:mod:`.booking`, :mod:`.planner`, :mod:`.watch`, :mod:`.exception_queue`) are
fed data and ``now``; :mod:`.store` is the database (SQLAlchemy Core, Alembic migrations);
:mod:`.service` is the asyncio adapter and :mod:`.api` the HTTP routes.
"""

"""Every test helper, in one place:

- `fixtures`, `processes`, `cluster`, `rabbitmq`, `secure_redis`, `redis_restart`: real
  servers and real worker processes behind the fixtures of tests/conftest.py;
- `wire`, `messages`: a bare producer and consumer, and inbound messages as the plain
  JSON a producer in any language sends (they import nothing of the project's worker,
  tasks or Celery app: integration tests talk to the worker from outside);
- `state`: reading an order's state back from Redis (the checking side);
- `factories`, `timeline`, `orders`: validated inbound models, a stand-in shell feeding
  them to `decide()`, and ready-made orders, for the unit and service tests.
"""

"""Operations: what an integration engineer needs to run the broker for years.

Health and readiness probes, Prometheus metrics, structured logs with request ids, retention
(purge), backup and restore. Nothing here touches orders; it observes the doors and the store.
"""

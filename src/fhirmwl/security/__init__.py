"""The trust boundary of the broker: TLS contexts, the start-up security posture, outbound
endpoint checks and the resource limits every door enforces (docs/security.md)."""

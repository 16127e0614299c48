"""The order fixtures (procedure catalogue) shared with the order workflow tests."""

from tests.integration.orders.conftest import catalogue_file

__all__ = ["catalogue_file"]

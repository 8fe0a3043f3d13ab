"""What can go wrong with the warehouse, in words a user can act on."""


class WarehouseError(Exception):
    """Base class for warehouse problems that a user can fix."""


class LockedWarehouse(WarehouseError):
    """Another process holds the DuckDB file's lock for longer than we were willing to wait."""


class MissingWarehouse(WarehouseError):
    """A read was asked of a warehouse that has not been created yet."""


class EmptyWarehouse(WarehouseError):
    """The warehouse exists but holds no data for the operation."""

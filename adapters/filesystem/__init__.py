"""Local disk: the ObjectStore on files written atomically."""

"""The local stack: launchers of Valkey, the MongoDB-wire server, workers, Flower and the API."""

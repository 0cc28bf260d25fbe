"""The BucketSource port on S3: read any bucket the object store's credentials can read.

One ``S3ObjectStore`` per bucket, built on first use with the object store's settings
(endpoint, region, credentials, timeouts), so a bucket source behaves as the object store does:
the same lazy per-process client, the same error translation."""

from collections.abc import Callable, Iterator
from typing import BinaryIO

from adapters.ports import ListedObject
from adapters.s3.object_store import S3ObjectStore

#: S3's largest listing page.
MAX_PAGE_SIZE = 1000


class S3Buckets:
    def __init__(self, store_for: Callable[[str], S3ObjectStore],
                 page_size: int = MAX_PAGE_SIZE) -> None:
        self._store_for = store_for
        self._page_size = page_size
        self._stores: dict[str, S3ObjectStore] = {}

    def _store(self, bucket: str) -> S3ObjectStore:
        store = self._stores.get(bucket)
        if store is None:
            store = self._stores[bucket] = self._store_for(bucket)
        return store

    def list_objects(self, bucket: str, prefix: str) -> Iterator[ListedObject]:
        return self._store(bucket).list_objects(prefix, self._page_size)

    def open(self, bucket: str, key: str) -> BinaryIO:
        return self._store(bucket).open(key)

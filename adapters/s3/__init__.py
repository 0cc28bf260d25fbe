"""S3 (or any S3-compatible store): the ObjectStore on boto3."""

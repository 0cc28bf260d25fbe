"""MongoDB: the job, document, user and verification repositories, and job statistics."""

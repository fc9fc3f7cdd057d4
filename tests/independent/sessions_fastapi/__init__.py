"""A FastAPI chat agent written from shared/seeds/000 and contracts.md §1, for proving the suite."""

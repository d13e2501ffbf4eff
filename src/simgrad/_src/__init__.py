"""Private implementation modules of simgrad. Nothing here is public API."""

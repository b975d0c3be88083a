"""The decisions of the job as plain functions over typed records; nothing here imports pyflink."""

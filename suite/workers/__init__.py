"""The workers that fill the scheduler's slots: ``base`` (the Worker the
scheduler drives, and the watchdog's allowance), ``local`` (forked
processes, or the main process), ``forked`` (the child process and its
channel), ``dask_cluster``, ``dask_worker`` and ``dask_tasks`` (--dask)."""

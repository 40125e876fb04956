"""Long work: the job table and manager, workers on a shared study store, launching a search,
backup."""

//! Frame codec; being written (issue 3 / issue 5).

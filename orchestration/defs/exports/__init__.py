"""Export group: the weekly summary report, its schedule and its delivery check."""

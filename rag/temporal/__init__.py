"""Time: dates in questions (as_of, periods, newest first), relative days in articles, stories and
timelines."""

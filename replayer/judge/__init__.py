"""Judging a replay: comparing answers, learned noise, results, the verdict, the report and HTML."""

"""Tests of skipsearch/metrics/."""

"""Tests of skipsearch/report/."""

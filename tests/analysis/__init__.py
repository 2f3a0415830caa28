"""Tests of skipsearch/analysis/."""

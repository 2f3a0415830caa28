"""Tests of skipsearch/search/."""

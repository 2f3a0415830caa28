"""Tests of skipsearch/cli/."""

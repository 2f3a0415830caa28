"""Tests of skipsearch/models/."""

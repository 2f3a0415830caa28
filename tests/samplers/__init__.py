"""Tests of skipsearch/samplers/."""

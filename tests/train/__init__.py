"""Tests of skipsearch/train/."""

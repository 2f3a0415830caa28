"""The paper's instruments: where in the noise range a schedule acts, and what it does there."""

"""The range of random-face seeds, in a module that imports nothing heavy (the command line reads it
before torch loads)."""

MAX_SEED = 2**64 - 1  # torch seeds are 64-bit: every seed from 0 to this names a face

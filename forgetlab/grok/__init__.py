"""Corrupted modular arithmetic ("To grok or not to grok", Doshi, Das, He, Gromov, ICLR 2024)."""

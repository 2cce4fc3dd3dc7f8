"""Fuzz tests (issue #10, "proof under bad input"): hypothesis feeds the parsers that
read outside input — bulk files, PortOne answers, vault frames — with arbitrary and
mutated input; each must end in its package's own error type or a clean result."""

"""Where results go: sinks, names, one result written, the journal, index, report, contact sheet."""

"""One module per printer transport: USB (host-streamed Marlin), OctoPrint and Moonraker (remote
jobs). :mod:`app.printing.connection` picks one for a connection."""

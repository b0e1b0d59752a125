"""Reading a range of records wherever it is: Redis, an archive, an exported file; windows,
capture order, time specs, export."""

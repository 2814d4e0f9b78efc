"""Network edges every listener shares: who counts as one client, and how many of them
a listener admits (``gate``) within the process's open-file budget (``budget``)."""

"""Real protocol endpoints at the RTUs (Modbus TCP, IEC 60870-5-104): a SCADA front end or
DMS drives the twin as it would the field. :mod:`~twin.protocols.pointmap` is the address
map both serve; the endpoints run their servers in threads of their own, fed by the field
simulator with telemetry as delivered and handing back the commands they receive."""

-- One random token per server start, which staging tables carry in their names
-- (`include/nse/warehouse.py`). The Memory engine keeps no rows across a restart: a stage whose
-- token is not here was made before the server last started, and the load that made it lost its
-- connection then and has failed, however little time has passed.
CREATE TABLE IF NOT EXISTS {db}.server_epoch
(
    token String
)
ENGINE = Memory;

-- Every device of the registry with its template, type and, for wired devices, where it is wired.
-- Named columns, not *: a view depends on every column it selects, and the registry's users own the others.
with devices as (
    select deviceid, devicename, devicetemplateid, macaddress from {{ source('registry', 'devices') }}
), templates as (
    select devicetemplateid, name, expected_interval_s, devicetypeid from {{ source('registry', 'devicetemplates') }}
), types as (
    select devicetypeid, typename, issensor, iscontroller from {{ source('registry', 'devicetypes') }}
), pins as (
    select pinid, connectorid, position, deviceid from {{ source('registry', 'pins') }}
), connectors as (
    select connectorid, controllerid, connectornumber from {{ source('registry', 'connectors') }}
)
select
    d.deviceid as device_id,
    d.devicename as device_name,
    d.devicetemplateid as template_id,
    t.name as template_name,
    t.expected_interval_s,
    ty.typename as device_type,
    coalesce(ty.issensor, false) as is_sensor,
    coalesce(ty.iscontroller, false) or d.macaddress is not null as is_controller,
    p.pinid is not null as is_wired,
    c.deviceid as controller_id,
    c.macaddress as controller_mac,
    con.connectornumber as connector_number,
    p.position as pin_position
from devices d
left join templates t on t.devicetemplateid = d.devicetemplateid
left join types ty on ty.devicetypeid = t.devicetypeid
left join pins p on p.deviceid = d.deviceid
left join connectors con on con.connectorid = p.connectorid
left join devices c on c.deviceid = con.controllerid

-- Every periodic device is either reporting or without data on a day of the fleet's health.
select day, periodic_devices, reporting_devices, devices_without_data
from {{ ref('fleet_health_daily') }}
where reporting_devices + devices_without_data <> periodic_devices

{#- The partition window a run covers: vars `start` and `end` (ISO 8601), all history without them. -#}
{% macro window_start() -%}
  {{ return(window_literal(var('start', '1970-01-01T00:00:00+00:00'))) }}
{%- endmacro %}

{% macro window_end() -%}
  {{ return(window_literal(var('end', '2200-01-01T00:00:00+00:00'))) }}
{%- endmacro %}

{% macro window_literal(value) -%}
  {#- Only timestamps get into the SQL: a var is never pasted in unchecked. -#}
  {%- set text = value | string -%}
  {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+)?([+-][0-9]{2}:?[0-9]{2}|Z)?$', text) -%}
    {{ exceptions.raise_compiler_error("window bound is not an ISO 8601 timestamp: " ~ text) }}
  {%- endif -%}
  {{ return("'" ~ text ~ "'::timestamptz") }}
{%- endmacro %}

{#- Incremental marts recompute exactly their window: its rows go first, then the window is inserted again. -#}
{% macro delete_window(column) -%}
  {%- if is_incremental() -%}
    delete from {{ this }} where {{ column }} >= {{ window_start() }} and {{ column }} < {{ window_end() }}
  {%- endif -%}
{%- endmacro %}

/*
 * streaming.sink._copy_rows: a batch of decoded records straight to the sink's COPY data, in C.
 *
 * The sink's hot path for the common case only: every record has exactly the form the processor writes
 * (streaming/decoding/decoded_format.py), a valid UTC timestamp in years 1970..9999, positive 32-bit ids,
 * a finite value, and no key twice. copy_binary() then returns those rows in COPY's binary format: the values
 * PostgreSQL would read from sink.rows.copy_text(parse_record(...)) for the same records, without the
 * database parsing text. For any other batch it returns None and the pure path parses it, which
 * dead-letters and explains every record it cannot store.
 *
 * The record's fixed parts come from Python (the same constants the processor writes with).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#define STAMP_LEN 27      /* YYYY-MM-DDTHH:MM:SS.ffffffZ */
#define MAX_NUMBER_LEN 32 /* read_value takes shorter numbers only; repr of a double has at most 24 */
/* COPY's binary format: a signature, flags and header extension length; per row a field count, then
 * each field's length and value (big-endian); a field count of -1 ends the data. */
static const char COPY_SIGNATURE[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n', '\0'};
#define COPY_HEADER_LEN (11 + 4 + 4)
/* timestamptz (8 bytes), device_id and datapoint_id (integer, 4 bytes each), value (double, 8 bytes). */
#define ROW_LEN (2 + 4 + 8 + 4 + 4 + 4 + 4 + 4 + 8)
#define COPY_TRAILER_LEN 2
/* PostgreSQL's timestamps count microseconds from 2000-01-01 00:00:00 UTC, 10,957 days after 1970's. */
#define PG_EPOCH_DAYS 10957
#define USECS_PER_DAY INT64_C(86400000000)

typedef struct {
    const char *stamp;
    int64_t device;
    int64_t datapoint;
} Key;

static int
digits(const char *p, int width, int *out)
{
    int value = 0;
    for (int i = 0; i < width; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return 0;
        }
        value = value * 10 + (p[i] - '0');
    }
    *out = value;
    return 1;
}

/* Days from 1970-01-01 to a date of the proleptic Gregorian calendar (H. Hinnant's days_from_civil). */
static int64_t
days_from_civil(int year, int month, int day)
{
    year -= month <= 2;
    int64_t era = (year >= 0 ? year : year - 399) / 400;
    int64_t year_of_era = year - era * 400;
    int64_t day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
    int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

/* The timestamp forms datetime.fromisoformat reads as a UTC instant in years 1970..9999 (a subset of them),
 * as PostgreSQL's microseconds since 2000-01-01 UTC. */
static int
read_stamp(const char *s, int64_t *out)
{
    int year, month, day, hour, minute, second, micros;
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[26] != 'Z') {
        return 0;
    }
    if (!digits(s, 4, &year) || !digits(s + 5, 2, &month) || !digits(s + 8, 2, &day) || !digits(s + 11, 2, &hour)
        || !digits(s + 14, 2, &minute) || !digits(s + 17, 2, &second) || !digits(s + 20, 6, &micros)) {
        return 0;
    }
    if (year < 1970 || month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59 || day < 1) {
        return 0;
    }
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > month_days[month - 1] + (month == 2 && leap)) {
        return 0;
    }
    int64_t seconds = (int64_t)hour * 3600 + minute * 60 + second;
    *out = (days_from_civil(year, month, day) - PG_EPOCH_DAYS) * USECS_PER_DAY + seconds * 1000000 + micros;
    return 1;
}

/* A positive 32-bit JSON integer (no sign, no leading zero) at *p; advances *p past it. */
static int
read_id(const char **p, const char *end, int64_t *out)
{
    const char *s = *p;
    int64_t value = 0;
    if (s >= end || *s < '1' || *s > '9') {
        return 0;
    }
    while (s < end && *s >= '0' && *s <= '9') {
        value = value * 10 + (*s - '0');
        if (value >= ((int64_t)1 << 31)) {
            return 0;
        }
        s++;
    }
    *p = s;
    *out = value;
    return 1;
}

/* A JSON number at *p written as Python's repr of a float (what the processor writes), as a double; advances
 * *p past it. Any other spelling of a number (an integer, a long mantissa, an exponent repr would not write)
 * is left to the pure path: an accepted number is then text every parser that round-trips repr reads as the
 * same double. */
static int
read_value(const char **p, const char *end, double *out)
{
    const char *s = *p, *start = *p;
    while (s < end && ((*s >= '0' && *s <= '9') || *s == '-' || *s == '+' || *s == '.' || *s == 'e')) {
        s++;
    }
    Py_ssize_t len = s - start;
    if (len == 0 || len >= MAX_NUMBER_LEN) {
        return 0;
    }
    char text[MAX_NUMBER_LEN];
    memcpy(text, start, len);
    text[len] = '\0';
    char *parsed_end;
    double value = PyOS_string_to_double(text, &parsed_end, NULL);
    if (value == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (parsed_end != text + len || !isfinite(value)) {
        return 0;
    }
    char *canonical = PyOS_double_to_string(value, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (canonical == NULL) {
        PyErr_Clear();
        return 0;
    }
    int same = strcmp(canonical, text) == 0;
    PyMem_Free(canonical);
    if (!same) {
        return 0;
    }
    *out = value;
    *p = s;
    return 1;
}

/* Big-endian integers at w; each returns the position after them. */
static char *
put_u16(char *w, uint16_t v)
{
    w[0] = (char)(v >> 8);
    w[1] = (char)v;
    return w + 2;
}

static char *
put_u32(char *w, uint32_t v)
{
    for (int i = 3; i >= 0; i--) {
        *w++ = (char)(v >> (8 * i));
    }
    return w;
}

static char *
put_u64(char *w, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        *w++ = (char)(v >> (8 * i));
    }
    return w;
}

static int
expect(const char **p, const char *end, const char *text, Py_ssize_t len)
{
    if (end - *p < len || memcmp(*p, text, len) != 0) {
        return 0;
    }
    *p += len;
    return 1;
}

static uint64_t
key_hash(const Key *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < STAMP_LEN; i++) {
        h = (h ^ (unsigned char)key->stamp[i]) * 1099511628211ULL;
    }
    h = (h ^ (uint64_t)key->device) * 1099511628211ULL;
    h = (h ^ (uint64_t)key->datapoint) * 1099511628211ULL;
    return h ^ (h >> 29);
}

/* Inserts key index i into the open-addressing table; 0 when an equal key is there already. */
static int
insert_key(Py_ssize_t *table, size_t mask, const Key *keys, Py_ssize_t i)
{
    size_t slot = (size_t)key_hash(&keys[i]) & mask;
    while (table[slot] >= 0) {
        const Key *other = &keys[table[slot]];
        if (other->device == keys[i].device && other->datapoint == keys[i].datapoint
            && memcmp(other->stamp, keys[i].stamp, STAMP_LEN) == 0) {
            return 0;
        }
        slot = (slot + 1) & mask;
    }
    table[slot] = i;
    return 1;
}

/* copy_binary(values, head, middle_device, middle_datapoint, middle_value, tail) -> bytes | None */
static PyObject *
copy_binary(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *values;
    const char *head, *mid_dev, *mid_dp, *mid_val, *tail;
    Py_ssize_t head_len, mid_dev_len, mid_dp_len, mid_val_len, tail_len;
    if (!PyArg_ParseTuple(args, "Oy#y#y#y#y#", &values, &head, &head_len, &mid_dev, &mid_dev_len, &mid_dp,
                          &mid_dp_len, &mid_val, &mid_val_len, &tail, &tail_len)) {
        return NULL;
    }
    PyObject *seq = PySequence_Fast(values, "values must be a sequence");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyBytes_FromStringAndSize(NULL, COPY_HEADER_LEN + n * ROW_LEN + COPY_TRAILER_LEN);
    Key *keys = PyMem_Malloc((n ? (size_t)n : 1) * sizeof(Key));
    size_t capacity = 16;
    while (capacity < 2 * (size_t)n) {
        capacity <<= 1;
    }
    Py_ssize_t *table = PyMem_Malloc(capacity * sizeof(Py_ssize_t));
    if (out == NULL || keys == NULL || table == NULL) {
        Py_DECREF(seq);
        Py_XDECREF(out);
        PyMem_Free(keys);
        PyMem_Free(table);
        return PyErr_Occurred() ? NULL : PyErr_NoMemory();
    }
    memset(table, 0xFF, capacity * sizeof(Py_ssize_t)); /* every slot -1 */
    char *w = PyBytes_AS_STRING(out);
    memcpy(w, COPY_SIGNATURE, sizeof COPY_SIGNATURE);
    w = put_u32(w + sizeof COPY_SIGNATURE, 0); /* flags: no OIDs */
    w = put_u32(w, 0);                         /* no header extension */
    int matched = 1;
    for (Py_ssize_t i = 0; i < n && matched; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        matched = 0;
        if (!PyBytes_Check(item)) {
            break;
        }
        const char *p = PyBytes_AS_STRING(item), *end = p + PyBytes_GET_SIZE(item);
        int64_t micros;
        double value;
        uint64_t value_bits;
        Key *key = &keys[i];
        if (!expect(&p, end, head, head_len) || end - p < STAMP_LEN || !read_stamp(p, &micros)) {
            break;
        }
        key->stamp = p;
        p += STAMP_LEN;
        if (!expect(&p, end, mid_dev, mid_dev_len) || !read_id(&p, end, &key->device)
            || !expect(&p, end, mid_dp, mid_dp_len) || !read_id(&p, end, &key->datapoint)
            || !expect(&p, end, mid_val, mid_val_len) || !read_value(&p, end, &value)
            || !expect(&p, end, tail, tail_len) || p != end) {
            break;
        }
        if (!insert_key(table, capacity - 1, keys, i)) {
            break; /* a key twice: the pure path keeps the last record */
        }
        memcpy(&value_bits, &value, sizeof value_bits);
        w = put_u16(w, 4);
        w = put_u64(put_u32(w, 8), (uint64_t)micros);
        w = put_u32(put_u32(w, 4), (uint32_t)key->device);
        w = put_u32(put_u32(w, 4), (uint32_t)key->datapoint);
        w = put_u64(put_u32(w, 8), value_bits);
        matched = 1;
    }
    Py_DECREF(seq);
    PyMem_Free(keys);
    PyMem_Free(table);
    if (!matched) {
        Py_DECREF(out);
        Py_RETURN_NONE;
    }
    put_u16(w, 0xFFFF); /* -1: the end of the data */
    return out;
}

static PyMethodDef module_methods[] = {
    {"copy_binary", copy_binary, METH_VARARGS,
     "copy_binary(values, head, middle_device, middle_datapoint, middle_value, tail): COPY binary data or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "streaming.sink._copy_rows",
    .m_doc = "A batch of decoded records straight to the sink's COPY data (its hot path).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__copy_rows(void)
{
    return PyModule_Create(&module_def);
}

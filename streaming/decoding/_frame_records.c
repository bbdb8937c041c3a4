/*
 * streaming.decoding._frame_records: one frame message straight to its decoded records, in C.
 *
 * The processor's hot path for the common case only: a well-formed hex frame (any whitespace between
 * or around its bytes) of a device whose layout is known. Layout.records() returns the (key, value) records the pure path (decoding.record.readings_of
 * + decoded_format.encode_readings) would build, byte for byte, or None for anything else: bad hex, a CRC
 * or length problem, a non-finite value, a timestamp outside years 1..9999, an over-long frame. The caller then runs
 * the pure path, which decides and explains every such case; so this file holds no error texts and no
 * rules of its own beyond the ones it can only accept by.
 *
 * The JSON template's fixed parts (head, per-datapoint middle, tail) and the keys come from Python
 * (streaming/decoding/decoded_format.py), so the contract's text lives in one place.
 *
 * Values are computed as Python computes them: raw * mul / div with exact integer operands up to 2**53
 * (IEEE division of exact operands is the correctly rounded quotient, as Python's int true division is),
 * and formatted with PyOS_double_to_string(..., 'r', ...), the function behind float.__repr__.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_FRAME 1024          /* longer frames take the pure path */
#define EXACT_LIMIT (1LL << 53) /* integers exactly representable as doubles */
#define STAMP_LEN 27            /* YYYY-MM-DDTHH:MM:SS.ffffffZ */

typedef struct {
    Py_ssize_t offset;
    char code; /* struct code: b B h H i I f */
    int64_t mul;
    int64_t div;
    PyObject *key;    /* bytes */
    PyObject *middle; /* bytes: everything between the timestamp and the value */
} Item;

typedef struct {
    PyObject_HEAD
    Py_ssize_t count;
    Item *items;
    int has_crc;
    int scaled;
    Py_ssize_t data_end;
    PyObject *head; /* bytes before the timestamp */
    PyObject *tail; /* bytes after the value */
} LayoutObject;

static uint16_t crc_table[256];

static void
init_crc_table(void)
{
    for (int byte = 0; byte < 256; byte++) {
        uint16_t crc = (uint16_t)byte;
        for (int bit = 0; bit < 8; bit++) {
            crc = (crc & 1) ? (uint16_t)((crc >> 1) ^ 0xA001) : (uint16_t)(crc >> 1);
        }
        crc_table[byte] = crc;
    }
}

static int
item_size(char code)
{
    switch (code) {
    case 'b': case 'B': return 1;
    case 'h': case 'H': return 2;
    case 'i': case 'I': case 'f': return 4;
    default: return 0;
    }
}

static void free_items(Item *items, Py_ssize_t count);

static void
Layout_dealloc(LayoutObject *self)
{
    free_items(self->items, self->count);
    Py_XDECREF(self->head);
    Py_XDECREF(self->tail);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static void
free_items(Item *items, Py_ssize_t count)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_XDECREF(items[i].key);
        Py_XDECREF(items[i].middle);
    }
    PyMem_Free(items);
}

/* Layout(items, has_crc, scaled, data_end, head, tail); items: (offset, code, mul, div, key, middle) each.
 * Built into locals and kept only when every part is valid: a Layout is either complete or refuses work. */
static int
Layout_init(LayoutObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"items", "has_crc", "scaled", "data_end", "head", "tail", NULL};
    PyObject *items_arg, *head, *tail;
    int has_crc, scaled;
    Py_ssize_t data_end;
    if (self->head != NULL) {
        PyErr_SetString(PyExc_TypeError, "Layout is initialised once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OppnSS", kwlist, &items_arg, &has_crc, &scaled, &data_end,
                                     &head, &tail)) {
        return -1;
    }
    PyObject *seq = PySequence_Fast(items_arg, "items must be a sequence");
    if (seq == NULL) {
        return -1;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq), built = 0;
    Item *items = PyMem_Calloc(count ? (size_t)count : 1, sizeof(Item));
    if (items == NULL) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (; built < count; built++) {
        Item *item = &items[built];
        PyObject *spec = PySequence_Fast_GET_ITEM(seq, built);
        const char *code;
        long long mul, div;
        PyObject *key, *middle;
        if (!PyTuple_Check(spec)) {
            PyErr_Format(PyExc_ValueError, "datapoint %zd: expected a tuple", built);
            break;
        }
        if (!PyArg_ParseTuple(spec, "nsLLSS", &item->offset, &code, &mul, &div, &key, &middle)) {
            break;
        }
        if (strlen(code) != 1 || item_size(code[0]) == 0 || item->offset < 0 || item->offset > MAX_FRAME
            || mul < 1 || div < 1 || mul > EXACT_LIMIT || div > EXACT_LIMIT) {
            PyErr_Format(PyExc_ValueError, "datapoint %zd cannot be decoded natively", built);
            break;
        }
        item->code = code[0];
        item->mul = mul;
        item->div = div;
        Py_INCREF(key);
        item->key = key;
        Py_INCREF(middle);
        item->middle = middle;
    }
    Py_DECREF(seq);
    if (built < count) {
        free_items(items, built);
        return -1;
    }
    self->items = items;
    self->count = count;
    self->has_crc = has_crc;
    self->scaled = scaled;
    self->data_end = data_end;
    Py_INCREF(head);
    self->head = head;
    Py_INCREF(tail);
    self->tail = tail;
    return 0;
}

static int
hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* What bytes.fromhex skips between bytes (Py_ISSPACE): the pure path's rule. */
static int
is_separator(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Bytes of `text` with any whitespace between or around its pairs; -1 for anything else. Only text the
 * regular forms below refuse comes here, so the common case pays nothing for it. */
static Py_ssize_t
parse_hex_irregular(const unsigned char *text, Py_ssize_t len, unsigned char *out)
{
    Py_ssize_t n = 0, i = 0;
    for (;;) {
        while (i < len && is_separator(text[i])) {
            i++;
        }
        if (i == len) {
            break;
        }
        if (i + 1 == len || n == MAX_FRAME) {
            return -1;
        }
        int high = hex_value(text[i]), low = hex_value(text[i + 1]);
        if (high < 0 || low < 0) {
            return -1;
        }
        out[n++] = (unsigned char)(high << 4 | low);
        i += 2;
    }
    return n > 0 ? n : -1;
}

/* Bytes of `text` when it is hex pairs, unseparated or one space between every two; -1 otherwise. */
static Py_ssize_t
parse_hex_regular(const unsigned char *text, Py_ssize_t len, unsigned char *out)
{
    Py_ssize_t step, n;
    if (len > 2 && text[2] == ' ') {
        if ((len + 1) % 3 != 0) {
            return -1;
        }
        step = 3;
        n = (len + 1) / 3;
    }
    else {
        if (len < 2 || len % 2 != 0) {
            return -1;
        }
        step = 2;
        n = len / 2;
    }
    if (n > MAX_FRAME) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const unsigned char *pair = text + i * step;
        int high = hex_value(pair[0]), low = hex_value(pair[1]);
        if (high < 0 || low < 0 || (step == 3 && i + 1 < n && pair[2] != ' ')) {
            return -1;
        }
        out[i] = (unsigned char)(high << 4 | low);
    }
    return n;
}

/* The pure path's rule (streaming/decoding/hex.py): the regular forms first, the controllers' usual ones. */
static Py_ssize_t
parse_hex(const unsigned char *text, Py_ssize_t len, unsigned char *out)
{
    Py_ssize_t n = parse_hex_regular(text, len, out);
    return n >= 0 ? n : parse_hex_irregular(text, len, out);
}

/* Days since 1970-01-01 to a civil date (H. Hinnant's days_from_civil inverse). */
static void
civil_from_days(int64_t days, int64_t *year, int *month, int *day)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = yoe + era * 400 + (*month <= 2);
}

/* `width` decimal digits of a non-negative number, zero-padded. */
static void
put_digits(char *out, int width, int64_t number)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + number % 10);
        number /= 10;
    }
}

/* RFC 3339 text of microseconds since the epoch, as records.rfc3339_from_us writes it; -1 outside 1..9999. */
static int
format_stamp(long long timestamp_us, char *out)
{
    long long seconds = timestamp_us / 1000000, micros = timestamp_us % 1000000;
    if (micros < 0) {
        micros += 1000000;
        seconds -= 1;
    }
    long long days = seconds / 86400, in_day = seconds % 86400;
    if (in_day < 0) {
        in_day += 86400;
        days -= 1;
    }
    int64_t year;
    int month, day;
    civil_from_days(days, &year, &month, &day);
    if (year < 1 || year > 9999) {
        return -1;
    }
    /* YYYY-MM-DDTHH:MM:SS.ffffffZ */
    put_digits(out, 4, year);
    out[4] = '-';
    put_digits(out + 5, 2, month);
    out[7] = '-';
    put_digits(out + 8, 2, day);
    out[10] = 'T';
    put_digits(out + 11, 2, in_day / 3600);
    out[13] = ':';
    put_digits(out + 14, 2, in_day / 60 % 60);
    out[16] = ':';
    put_digits(out + 17, 2, in_day % 60);
    out[19] = '.';
    put_digits(out + 20, 6, micros);
    out[26] = 'Z';
    return 0;
}

/* The value of one datapoint as Python computes it; 0 when it cannot be computed exactly here. */
static int
item_value(const LayoutObject *layout, const Item *item, const unsigned char *p, double *value)
{
    int64_t raw;
    switch (item->code) {
    case 'b': raw = (int8_t)p[0]; break;
    case 'B': raw = p[0]; break;
    case 'h': raw = (int16_t)(uint16_t)(p[0] << 8 | p[1]); break;
    case 'H': raw = (uint16_t)(p[0] << 8 | p[1]); break;
    case 'i': raw = (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]); break;
    case 'I': raw = (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]); break;
    case 'f': {
        uint32_t bits = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        float f;
        memcpy(&f, &bits, sizeof f);
        double v = (double)f;
        /* float * int and float / int in Python: the int converted to double (exact below 2**53). */
        *value = layout->scaled ? v * (double)item->mul / (double)item->div : v / (double)item->div;
        return isfinite(*value);
    }
    default: return 0;
    }
    int64_t product = raw;
    if (layout->scaled) {
        if (__builtin_mul_overflow(raw, item->mul, &product)) {
            return 0;
        }
    }
    if (product > EXACT_LIMIT || product < -EXACT_LIMIT) {
        return 0;
    }
    *value = (double)product / (double)item->div;
    return 1;
}

static PyObject *
build_value(const LayoutObject *layout, const Item *item, const char *stamp, double value)
{
    char *text = PyOS_double_to_string(value, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (text == NULL) {
        return NULL;
    }
    Py_ssize_t head = PyBytes_GET_SIZE(layout->head), middle = PyBytes_GET_SIZE(item->middle);
    Py_ssize_t tail = PyBytes_GET_SIZE(layout->tail), number = (Py_ssize_t)strlen(text);
    PyObject *out = PyBytes_FromStringAndSize(NULL, head + STAMP_LEN + middle + number + tail);
    if (out != NULL) {
        char *w = PyBytes_AS_STRING(out);
        memcpy(w, PyBytes_AS_STRING(layout->head), head);
        w += head;
        memcpy(w, stamp, STAMP_LEN);
        w += STAMP_LEN;
        memcpy(w, PyBytes_AS_STRING(item->middle), middle);
        w += middle;
        memcpy(w, text, number);
        w += number;
        memcpy(w, PyBytes_AS_STRING(layout->tail), tail);
    }
    PyMem_Free(text);
    return out;
}

/* records(hex, timestamp_us) -> list of (key, value), or None when the pure path must decide. */
static PyObject *
Layout_records(LayoutObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyUnicode_Check(args[0]) || !PyLong_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "records(hex: str, timestamp_us: int)");
        return NULL;
    }
    if (self->head == NULL) {
        PyErr_SetString(PyExc_ValueError, "Layout is not initialised");
        return NULL;
    }
    PyObject *hex = args[0];
    if (!PyUnicode_IS_ASCII(hex)) {
        Py_RETURN_NONE;
    }
    int overflow;
    long long timestamp_us = PyLong_AsLongLongAndOverflow(args[1], &overflow);
    if (overflow || (timestamp_us == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    unsigned char frame[MAX_FRAME];
    Py_ssize_t size = parse_hex(PyUnicode_1BYTE_DATA(hex), PyUnicode_GET_LENGTH(hex), frame);
    if (size < 0) {
        Py_RETURN_NONE;
    }
    Py_ssize_t usable = size;
    if (self->has_crc) {
        if (size < 5 || size != 5 + frame[2]) {
            Py_RETURN_NONE;
        }
        uint16_t crc = 0xFFFF;
        for (Py_ssize_t i = 0; i < size; i++) {
            crc = (uint16_t)((crc >> 8) ^ crc_table[(crc ^ frame[i]) & 0xFF]);
        }
        if (crc != 0) {
            Py_RETURN_NONE;
        }
        usable = size - 2;
    }
    if (usable < self->data_end) {
        Py_RETURN_NONE;
    }
    char stamp[STAMP_LEN + 1];
    if (format_stamp(timestamp_us, stamp) < 0) {
        Py_RETURN_NONE;
    }
    double values[MAX_FRAME];
    if (self->count > MAX_FRAME) {
        Py_RETURN_NONE;
    }
    for (Py_ssize_t i = 0; i < self->count; i++) {
        const Item *item = &self->items[i];
        if (item->offset + item_size(item->code) > usable || !item_value(self, item, frame + item->offset, &values[i])) {
            Py_RETURN_NONE;
        }
    }
    PyObject *out = PyList_New(self->count);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < self->count; i++) {
        const Item *item = &self->items[i];
        PyObject *value = build_value(self, item, stamp, values[i]);
        if (value == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyObject *record = PyTuple_New(2);
        if (record == NULL) {
            Py_DECREF(value);
            Py_DECREF(out);
            return NULL;
        }
        Py_INCREF(item->key);
        PyTuple_SET_ITEM(record, 0, item->key);
        PyTuple_SET_ITEM(record, 1, value);
        PyList_SET_ITEM(out, i, record);
    }
    return out;
}

/* format_stamp(timestamp_us) -> str or None: exposed so tests can compare it with the pure formatting. */
static PyObject *
module_format_stamp(PyObject *module, PyObject *arg)
{
    (void)module;
    long long timestamp_us = PyLong_AsLongLong(arg);
    if (timestamp_us == -1 && PyErr_Occurred()) {
        return NULL;
    }
    char stamp[STAMP_LEN + 1];
    if (format_stamp(timestamp_us, stamp) < 0) {
        Py_RETURN_NONE;
    }
    return PyUnicode_FromStringAndSize(stamp, STAMP_LEN);
}

static PyMethodDef Layout_methods[] = {
    {"records", (PyCFunction)(void (*)(void))Layout_records, METH_FASTCALL,
     "records(hex, timestamp_us): the frame's (key, value) records, or None when the pure path must decide."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject LayoutType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "streaming.decoding._frame_records.Layout",
    .tp_doc = "A device's frame layout and record templates, built once per device.",
    .tp_basicsize = sizeof(LayoutObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Layout_init,
    .tp_dealloc = (destructor)Layout_dealloc,
    .tp_methods = Layout_methods,
};

static PyMethodDef module_methods[] = {
    {"format_stamp", module_format_stamp, METH_O, "RFC 3339 text of microseconds since the epoch, or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "streaming.decoding._frame_records",
    .m_doc = "One frame message straight to its decoded records (the processor's hot path).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__frame_records(void)
{
    init_crc_table();
    if (PyType_Ready(&LayoutType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&LayoutType);
    if (PyModule_AddObject(module, "Layout", (PyObject *)&LayoutType) < 0) {
        Py_DECREF(&LayoutType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

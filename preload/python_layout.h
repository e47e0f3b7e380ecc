/* CPython's private structure offsets, per minor version (python_layout.c).
 * Offsets in bytes; -1 where a version has no such field. */
#ifndef MEMTRACE_PYTHON_LAYOUT_H
#define MEMTRACE_PYTHON_LAYOUT_H

/* The same in every supported version: PyObject.ob_type, and
 * PyASCIIObject's length and state bit-field (interned:2, kind:3,
 * compact:1, ascii:1 from bit 0). */
#define MT_PY_OBJECT_TYPE 8
#define MT_PY_STR_LENGTH 16
#define MT_PY_STR_STATE 32

enum mt_py_model {
    MT_PY_FRAME_OBJECTS = 1,      /* 3.8-3.10: PyFrameObject, one per eval call */
    MT_PY_INTERPRETER_FRAMES = 2, /* 3.11+: _PyInterpreterFrame, several per eval call */
};

struct mt_py_layout {
    int minor;
    enum mt_py_model model;
    int tstate_frame;   /* PyThreadState: frame (3.8-3.10), cframe (3.11-3.12),
                           current_frame (3.13) */
    int cframe_current; /* _PyCFrame: current_frame; -1: tstate_frame is the frame */
    int frame_back;     /* f_back / previous */
    int frame_code;     /* f_code / f_executable */
    int frame_lasti;    /* PyFrameObject.f_lasti (int) */
    int lasti_scale;    /* bytes per f_lasti unit */
    int frame_instr;    /* prev_instr / instr_ptr (_Py_CODEUNIT *) */
    int frame_owner;    /* char */
    int frame_is_entry; /* char (3.11) */
    int owner_generator, owner_cstack;
    int code_filename, code_name, code_qualname, code_firstlineno;
    int code_adaptive;       /* co_code_adaptive: the bytecode, inline */
    int code_firsttraceable; /* int: code units before the first traceable one */
    int ascii_size;          /* sizeof(PyASCIIObject): compact ASCII data follows */
    int compact_size;        /* sizeof(PyCompactUnicodeObject): other compact data */
    int compact_utf8_length, compact_utf8;
};

/* NULL when the version is not supported. */
const struct mt_py_layout *mt_py_layout_for(int major, int minor);

#endif

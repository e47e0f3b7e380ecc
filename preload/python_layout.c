/* The one place that knows CPython's private structures: for each supported
 * minor version, where a thread's current frame, a frame's code object and
 * instruction, and a code object's names live (python.c walks them).
 *
 * The offsets are those of the x86-64 builds, read with offsetof() from each
 * version's own headers (Include/cpython/pystate.h, Include/internal/
 * pycore_frame.h, Include/cpython/code.h, Include/cpython/unicodeobject.h);
 * tests/unit/test_python_layout.sh compiles that same offsetof() program
 * against every CPython whose headers are on the machine and compares.
 * A version missing here is refused at startup (native frames only), never
 * guessed.
 */
#include "python_layout.h"

static const struct mt_py_layout layouts[] = {
    /* 3.8 and 3.9: PyFrameObject chain from tstate->frame; f_lasti in bytes */
    {.minor = 8, .model = MT_PY_FRAME_OBJECTS, .tstate_frame = 24, .cframe_current = -1, .frame_back = 24,
     .frame_code = 32, .frame_lasti = 104, .lasti_scale = 1, .code_filename = 104,
     .code_name = 112, .code_qualname = -1, .code_firstlineno = 40, .ascii_size = 48,
     .compact_size = 72, .compact_utf8_length = 48, .compact_utf8 = 56},
    {.minor = 9, .model = MT_PY_FRAME_OBJECTS, .tstate_frame = 24, .cframe_current = -1, .frame_back = 24,
     .frame_code = 32, .frame_lasti = 104, .lasti_scale = 1, .code_filename = 104,
     .code_name = 112, .code_qualname = -1, .code_firstlineno = 40, .ascii_size = 48,
     .compact_size = 72, .compact_utf8_length = 48, .compact_utf8 = 56},
    /* 3.10: f_lasti counts code units (2 bytes) */
    {.minor = 10, .model = MT_PY_FRAME_OBJECTS, .tstate_frame = 24, .cframe_current = -1, .frame_back = 24,
     .frame_code = 32, .frame_lasti = 96, .lasti_scale = 2, .code_filename = 104,
     .code_name = 112, .code_qualname = -1, .code_firstlineno = 40, .ascii_size = 48,
     .compact_size = 72, .compact_utf8_length = 48, .compact_utf8 = 56},
    /* 3.11: _PyInterpreterFrame chain from tstate->cframe->current_frame;
     * one eval call runs frames up to the one with is_entry set */
    {.minor = 11, .model = MT_PY_INTERPRETER_FRAMES, .tstate_frame = 56, .cframe_current = 8,
     .frame_back = 48, .frame_code = 32, .frame_instr = 56, .frame_owner = 69,
     .frame_is_entry = 68, .owner_generator = 1, .owner_cstack = -1, .code_filename = 112,
     .code_name = 120, .code_qualname = 128, .code_firstlineno = 72, .code_adaptive = 184,
     .code_firsttraceable = 168, .ascii_size = 48, .compact_size = 72,
     .compact_utf8_length = 48, .compact_utf8 = 56},
    /* 3.12: an entry frame owned by the C stack marks each eval call */
    {.minor = 12, .model = MT_PY_INTERPRETER_FRAMES, .tstate_frame = 56, .cframe_current = 0,
     .frame_back = 8, .frame_code = 0, .frame_instr = 56, .frame_owner = 70,
     .frame_is_entry = -1, .owner_generator = 1, .owner_cstack = 3, .code_filename = 112,
     .code_name = 120, .code_qualname = 128, .code_firstlineno = 68, .code_adaptive = 192,
     .code_firsttraceable = 176, .ascii_size = 40, .compact_size = 56,
     .compact_utf8_length = 40, .compact_utf8 = 48},
    /* 3.13: tstate->current_frame; instr_ptr is the current instruction */
    {.minor = 13, .model = MT_PY_INTERPRETER_FRAMES, .tstate_frame = 72, .cframe_current = -1,
     .frame_back = 8, .frame_code = 0, .frame_instr = 56, .frame_owner = 70,
     .frame_is_entry = -1, .owner_generator = 1, .owner_cstack = 3, .code_filename = 112,
     .code_name = 120, .code_qualname = 128, .code_firstlineno = 68, .code_adaptive = 200,
     .code_firsttraceable = 184, .ascii_size = 40, .compact_size = 56,
     .compact_utf8_length = 40, .compact_utf8 = 48},
};

const struct mt_py_layout *mt_py_layout_for(int major, int minor)
{
    if (major != 3)
        return 0;
    for (unsigned i = 0; i < sizeof layouts / sizeof layouts[0]; i++)
        if (layouts[i].minor == minor)
            return &layouts[i];
    return 0;
}

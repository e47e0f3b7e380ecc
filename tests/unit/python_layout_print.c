/* Prints memtrace's table for CPython 3.MINOR (preload/python_layout.c) in
 * python_offsets.c's format: the fields that version has, by the same
 * names. For test_python_layout.py. */
#include <stdio.h>
#include <stdlib.h>

#include "python_layout.h"

#define P(name, value) printf("%s %ld\n", name, (long)(value))

int main(int argc, char **argv)
{
    int minor = argc > 1 ? atoi(argv[1]) : 0;
    const struct mt_py_layout *l = mt_py_layout_for(3, minor);
    if (!l) {
        printf("unsupported\n");
        return 0;
    }
    printf("minor %d\n", minor);
    P("tstate_frame", l->tstate_frame);
    if (l->cframe_current >= 0)
        P("cframe_current", l->cframe_current);
    P("frame_back", l->frame_back);
    P("frame_code", l->frame_code);
    if (l->model == MT_PY_FRAME_OBJECTS) {
        P("frame_lasti", l->frame_lasti);
    } else {
        P("frame_instr", l->frame_instr);
        P("frame_owner", l->frame_owner);
        if (l->frame_is_entry >= 0)
            P("frame_is_entry", l->frame_is_entry);
        if (l->owner_cstack >= 0)
            P("owner_cstack", l->owner_cstack);
        P("owner_generator", l->owner_generator);
        P("code_qualname", l->code_qualname);
        P("code_adaptive", l->code_adaptive);
        P("code_firsttraceable", l->code_firsttraceable);
    }
    P("code_filename", l->code_filename);
    P("code_name", l->code_name);
    P("code_firstlineno", l->code_firstlineno);
    P("ascii_size", l->ascii_size);
    P("compact_size", l->compact_size);
    P("compact_utf8_length", l->compact_utf8_length);
    P("compact_utf8", l->compact_utf8);
    P("str_length", MT_PY_STR_LENGTH);
    P("str_state", MT_PY_STR_STATE);
    P("object_type", MT_PY_OBJECT_TYPE);
    return 0;
}

/*
 * ctl_cmds - the command table from ctl_cmds.def; contract in ctl_cmds.h.
 */
#include <string.h>

#include "mail/ctl_cmds.h"
#include "base/util.h"

const struct ctl_cmd ctl_cmds[CTL_CMD__COUNT] = {
#define CMD(id, word, sub, args, group, flags, doc)                                                \
    {CTL_CMD_##id, word, sub, args, CTL_G_##group, flags, doc},
#include "mail/ctl_cmds.def"
#undef CMD
};

static const struct {
    const char *name, *title, *owner;
} groups[CTL_G__COUNT] = {
    [CTL_G_OFFLINE] = {"offline", "without a running daemon", "smtpctl"},
    [CTL_G_DAEMON] = {"daemon", "the daemon (master)", "master"},
    [CTL_G_QUEUE] = {"queue", "the queue (qmgr)", "qmgr"},
    [CTL_G_DNS] = {"dns", "DNS (dnsd)", "dnsd"},
    [CTL_G_INTAKE] = {"intake", "intake (smtpd)", "smtpd"},
    [CTL_G_DELIVERY] = {"delivery", "delivery (deliver)", "deliver"},
};

const char *ctl_group_name(enum ctl_group g)
{
    return groups[g].name;
}

const char *ctl_group_title(enum ctl_group g)
{
    return groups[g].title;
}

const char *ctl_cmd_owner(const struct ctl_cmd *c)
{
    return (c->flags & CF_CLIENT) ? "smtpctl" : groups[c->group].owner;
}

const struct ctl_cmd *ctl_cmd_find(int argc, char *const *argv)
{
    if (argc < 1)
        return NULL;
    for (size_t i = 0; i < nitems(ctl_cmds); i++) {
        const struct ctl_cmd *c = &ctl_cmds[i];
        if (strcmp(argv[0], c->word) != 0)
            continue;
        if (c->sub == NULL || (argc > 1 && strcmp(argv[1], c->sub) == 0))
            return c;
    }
    return NULL;
}

int ctl_cmd_word_known(const char *word)
{
    for (size_t i = 0; i < nitems(ctl_cmds); i++)
        if (strcmp(word, ctl_cmds[i].word) == 0)
            return 1;
    return 0;
}

int ctl_cmd_word_has_subs(const char *word)
{
    for (size_t i = 0; i < nitems(ctl_cmds); i++)
        if (strcmp(word, ctl_cmds[i].word) == 0 && ctl_cmds[i].sub != NULL)
            return 1;
    return 0;
}

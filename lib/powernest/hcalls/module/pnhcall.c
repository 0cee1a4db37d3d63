// SPDX-License-Identifier: GPL-2.0
/*
 * pnhcall: raw hypervisor calls from an L1 guest, for powernest's tests.
 *
 * /proc/pnhcall (0600) takes one command per write(2); a read(2) from offset 0
 * returns the result of the last command as one line:
 *
 *   call OPCODE [A1 ... A9]    rc=<signed> r4=0x.. ... r12=0x.. tb0=0x.. tb1=0x.. l1=ok
 *                              (plpar_hcall9; tb0/tb1: the timebase just before and
 *                              after; l1: "ok", or the L1 registers the call changed,
 *                              as NAME:0xBEFORE>0xAFTER,...)
 *   stamp ID OFFSET DELTA be|le   tb=0x<value> (the timebase plus DELTA, written as
 *                              8 bytes of that byte order: a deadline for the L0)
 *   alloc ID SIZE              addr=0x<real address> size=<SIZE>
 *   write ID OFFSET HEXBYTES   ok
 *   read ID OFFSET LEN         the bytes in hex
 *   free ID                    ok, or kept (see below)
 *   kept                       kept=<buffers> bytes=<total> lent=yes|no
 *
 * Numbers are C-style (0x hex, 0 octal, decimal; "-N" decimal as two's
 * complement).  Buffers (ID 0..15, at most 1 MiB) are physically contiguous,
 * zeroed and page aligned.  A bad command fails the write with -EINVAL and
 * leaves "error: <what>" as the result.
 *
 * Safe on a machine people use: only the nested APIs' hcalls are made, and
 * those given at load time (insmod pnhcall.ko allow=0x3c,...).  While the L0
 * may hold buffer addresses (from a successful H_SET_PARTITION_TABLE of a
 * table until one of 0, and while a guest the module created is not deleted),
 * a freed or replaced buffer is kept, not given back to the kernel: the kept
 * ones are released once the L0 holds none, and never at unload while it may.
 * The module refuses to load under kernel lockdown.
 */
#include <linux/gfp.h>
#include <linux/list.h>
#include <linux/kernel.h>	/* hex2bin, bin2hex: linux/hex.h since 6.2 */
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/proc_fs.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/preempt.h>
#include <linux/security.h>
#include <asm/hvcall.h>
#include <asm/page.h>
#include <asm/reg.h>

#define MAX_COMMAND 8192
#define MAX_BUFFERS 16
#define MAX_SIZE (1 << 20)
#define MAX_READ 4096

#define H_SET_PARTITION_TABLE 0xF800
#define H_GUEST_CREATE 0x470
#define H_GUEST_DELETE 0x488
#define DELETE_ALL_GUESTS (1UL << 63)
#define MAX_ALLOW 8

/* The nested APIs' hcalls: v1 (KVM's), then v2 (PAPR's). */
static const unsigned long nested_hcalls[] = {
	0xF800, 0xF804, 0xF808, 0xF80C,
	0x460, 0x464, 0x470, 0x474, 0x478, 0x47C, 0x480, 0x484, 0x488,
};
static unsigned long allow[MAX_ALLOW];
static int allowed_extra;
module_param_array(allow, ulong, &allowed_extra, 0444);
MODULE_PARM_DESC(allow, "hcall opcodes allowed besides the nested APIs' (at most 8)");

struct buffer {
	void *virt;
	size_t size;
};

struct kept_buffer {
	struct list_head node;
	struct buffer buf;
};

static DEFINE_MUTEX(lock);
static struct buffer buffers[MAX_BUFFERS];
static LIST_HEAD(kept);
static bool table_registered;	/* v1: the L0 holds a partition table of ours */
static unsigned long guests;	/* v2: guests created and not deleted */
static char result[2 * MAX_READ + 2];
static u8 scratch[MAX_COMMAND / 2];	/* HEXBYTES decoded before they are copied */

static int fail(const char *what, const char *arg)
{
	snprintf(result, sizeof(result), "error: %s%s%s\n", what, arg ? " " : "", arg ?: "");
	return -EINVAL;
}

static int number(const char *arg, unsigned long *value)
{
	long negative;

	if (arg[0] != '-')
		return kstrtoul(arg, 0, value) ? fail("bad number", arg) : 0;
	if (kstrtol(arg, 10, &negative))
		return fail("bad number", arg);
	*value = negative;
	return 0;
}

static int buffer_id(const char *arg, struct buffer **buf, bool allocated)
{
	unsigned long id;

	if (number(arg, &id))
		return -EINVAL;
	if (id >= MAX_BUFFERS)
		return fail("no such buffer ID", arg);
	*buf = &buffers[id];
	if (allocated && !(*buf)->virt)
		return fail("buffer not allocated:", arg);
	return 0;
}

/* Parse OFFSET into `off`; the LEN bytes from there must lie inside `buf`. */
static int span(struct buffer *buf, const char *offset, unsigned long *off, unsigned long len)
{
	if (number(offset, off))
		return -EINVAL;
	if (*off > buf->size || len > buf->size - *off)
		return fail("out of bounds", NULL);
	return 0;
}

/* Whether the L0 may hold addresses of the module's buffers. */
static bool lent(void)
{
	return table_registered || guests;
}

/* Free a buffer, or keep it while the L0 may use it; true if kept. */
static bool release(struct buffer *buf)
{
	struct kept_buffer *k;
	bool keep = buf->virt && lent();

	if (keep) {
		k = kmalloc(sizeof(*k), GFP_KERNEL);
		if (k) {
			k->buf = *buf;
			list_add(&k->node, &kept);
		}	/* else: leaked, never handed back while the L0 may use it */
	} else if (buf->virt) {
		free_pages_exact(buf->virt, buf->size);
	}
	buf->virt = NULL;
	buf->size = 0;
	return keep;
}

static void release_kept(void)
{
	struct kept_buffer *k, *next;

	list_for_each_entry_safe(k, next, &kept, node) {
		free_pages_exact(k->buf.virt, k->buf.size);
		list_del(&k->node);
		kfree(k);
	}
}

static bool allowed(unsigned long opcode)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(nested_hcalls); i++)
		if (opcode == nested_hcalls[i])
			return true;
	for (i = 0; i < allowed_extra; i++)
		if (opcode == allow[i])
			return true;
	return false;
}

/* What a successful call changed in what the L0 holds. */
static void note_lending(unsigned long *a)
{
	if (a[0] == H_SET_PARTITION_TABLE)
		table_registered = a[1] != 0;
	else if (a[0] == H_GUEST_CREATE)
		guests++;
	else if (a[0] == H_GUEST_DELETE)
		guests = (a[1] & DELETE_ALL_GUESTS) || !guests ? 0 : guests - 1;
	if (!lent())
		release_kept();
}

/*
 * The L1 registers an hcall must leave as they were, whatever the L0 ran in
 * between (an L2 sets its own values of each): read before and after the call.
 */
#define L1_SPRS(X) X(AMR) X(IAMR) X(UAMOR) X(DSCR) X(TAR) X(FSCR) X(PID) \
	X(SPRG0) X(SPRG1) X(SPRG3) X(EBBHR) X(EBBRR) X(BESCR) X(VRSAVE)
#define L1_SPR_FIELD(name) unsigned long name;
#define L1_SPR_READ(name) s->name = mfspr(SPRN_##name);
#define L1_SPR_DIFF(name) changed(&out, end, #name, before->name, after->name);

struct l1_state {
	unsigned long MSR;
	L1_SPRS(L1_SPR_FIELD)
};

static void l1_read(struct l1_state *s)
{
	s->MSR = mfmsr();
	L1_SPRS(L1_SPR_READ)
}

static void changed(char **out, char *end, const char *name, unsigned long before,
		    unsigned long after)
{
	if (before != after && *out < end)
		*out += scnprintf(*out, end - *out, "%s:0x%lx>0x%lx,", name, before, after);
}

/* "ok", or the registers that differ, into `out` (at least 2 bytes). */
static void l1_compare(const struct l1_state *before, const struct l1_state *after,
		       char *out, size_t size)
{
	char *start = out, *end = out + size;

	changed(&out, end, "MSR", before->MSR, after->MSR);
	L1_SPRS(L1_SPR_DIFF)
	if (out == start)
		strscpy(start, "ok", size);
	else
		out[-1] = '\0';	/* the last comma */
}

static int do_call(int argc, char **argv)
{
	unsigned long a[10] = {}, r[PLPAR_HCALL9_BUFSIZE] = {}, tb0, tb1;
	struct l1_state before, after;
	char l1[512];
	long rc;
	int i;

	if (argc < 1 || argc > 10)
		return fail("usage: call OPCODE [A1 ... A9]", NULL);
	for (i = 0; i < argc; i++)
		if (number(argv[i], &a[i]))
			return -EINVAL;
	if (!allowed(a[0]))
		return fail("hcall not allowed (the nested APIs' only, and insmod allow=...):",
			    argv[0]);
	preempt_disable();	/* one CPU's registers, read on either side of the call */
	l1_read(&before);
	tb0 = mftb();
	rc = plpar_hcall9(a[0], r, a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9]);
	tb1 = mftb();
	l1_read(&after);
	preempt_enable();
	l1_compare(&before, &after, l1, sizeof(l1));
	if (rc == H_SUCCESS)
		note_lending(a);
	snprintf(result, sizeof(result),
		 "rc=%ld r4=0x%lx r5=0x%lx r6=0x%lx r7=0x%lx r8=0x%lx r9=0x%lx r10=0x%lx r11=0x%lx r12=0x%lx tb0=0x%lx tb1=0x%lx l1=%s\n",
		 rc, r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], tb0, tb1, l1);
	return 0;
}

static int do_stamp(int argc, char **argv)
{
	struct buffer *buf;
	unsigned long off, delta, value;
	__be64 big;
	__le64 little;

	if (argc != 4 || (strcmp(argv[3], "be") && strcmp(argv[3], "le")))
		return fail("usage: stamp ID OFFSET DELTA be|le", NULL);
	if (buffer_id(argv[0], &buf, true) || span(buf, argv[1], &off, 8) ||
	    number(argv[2], &delta))
		return -EINVAL;
	value = mftb() + delta;
	big = cpu_to_be64(value);
	little = cpu_to_le64(value);
	memcpy(buf->virt + off, argv[3][0] == 'b' ? (void *)&big : (void *)&little, 8);
	snprintf(result, sizeof(result), "tb=0x%lx\n", value);
	return 0;
}

static int do_alloc(int argc, char **argv)
{
	struct buffer *buf;
	unsigned long size;

	if (argc != 2)
		return fail("usage: alloc ID SIZE", NULL);
	if (buffer_id(argv[0], &buf, false) || number(argv[1], &size))
		return -EINVAL;
	if (size < 1 || size > MAX_SIZE)
		return fail("size out of range 1..1048576:", argv[1]);
	release(buf);
	buf->virt = alloc_pages_exact(size, GFP_KERNEL | __GFP_ZERO);
	if (!buf->virt)
		return fail("out of memory", NULL);
	buf->size = size;
	snprintf(result, sizeof(result), "addr=0x%lx size=%zu\n", __pa(buf->virt), buf->size);
	return 0;
}

static int do_write(int argc, char **argv)
{
	struct buffer *buf;
	unsigned long off;
	size_t len;

	if (argc != 3)
		return fail("usage: write ID OFFSET HEXBYTES", NULL);
	len = strlen(argv[2]);
	if (len % 2 || hex2bin(scratch, argv[2], len / 2))
		return fail("HEXBYTES is not an even number of hex digits", NULL);
	if (buffer_id(argv[0], &buf, true) || span(buf, argv[1], &off, len / 2))
		return -EINVAL;
	memcpy(buf->virt + off, scratch, len / 2);
	strscpy(result, "ok\n", sizeof(result));
	return 0;
}

static int do_read(int argc, char **argv)
{
	struct buffer *buf;
	unsigned long off, len;

	if (argc != 3)
		return fail("usage: read ID OFFSET LEN", NULL);
	if (buffer_id(argv[0], &buf, true) || number(argv[2], &len))
		return -EINVAL;
	if (len > MAX_READ)
		return fail("LEN over 4096:", argv[2]);
	if (span(buf, argv[1], &off, len))
		return -EINVAL;
	strcpy(bin2hex(result, buf->virt + off, len), "\n");
	return 0;
}

static int do_free(int argc, char **argv)
{
	struct buffer *buf;

	if (argc != 1)
		return fail("usage: free ID", NULL);
	if (buffer_id(argv[0], &buf, true))
		return -EINVAL;
	strscpy(result, release(buf) ? "kept (the L0 may hold it)\n" : "ok\n", sizeof(result));
	return 0;
}

static int do_kept(int argc, char **argv)
{
	struct kept_buffer *k;
	unsigned long count = 0, bytes = 0;

	if (argc != 0)
		return fail("usage: kept", NULL);
	list_for_each_entry(k, &kept, node) {
		count++;
		bytes += k->buf.size;
	}
	snprintf(result, sizeof(result), "kept=%lu bytes=%lu lent=%s\n", count, bytes,
		 lent() ? "yes" : "no");
	return 0;
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "call", do_call }, { "alloc", do_alloc }, { "write", do_write },
	{ "read", do_read }, { "free", do_free }, { "stamp", do_stamp }, { "kept", do_kept },
};

static int execute(const char *line)
{
	char **argv;
	int argc, i, rc;

	argv = argv_split(GFP_KERNEL, line, &argc);
	if (!argv)
		return fail("out of memory", NULL);
	rc = argc ? fail("unknown command", argv[0]) : fail("empty command", NULL);
	for (i = 0; argc && i < ARRAY_SIZE(commands); i++)
		if (!strcmp(argv[0], commands[i].name)) {
			rc = commands[i].run(argc - 1, argv + 1);
			break;
		}
	argv_free(argv);
	return rc;
}

static ssize_t pn_write(struct file *file, const char __user *ubuf, size_t count, loff_t *ppos)
{
	char *line;
	int rc;

	if (count > MAX_COMMAND) {
		mutex_lock(&lock);
		fail("command longer than 8192 bytes", NULL);
		mutex_unlock(&lock);
		return -EINVAL;
	}
	line = memdup_user_nul(ubuf, count);
	if (IS_ERR(line))
		return PTR_ERR(line);
	mutex_lock(&lock);
	rc = execute(line);
	mutex_unlock(&lock);
	kfree(line);
	return rc ?: count;
}

static ssize_t pn_read(struct file *file, char __user *ubuf, size_t count, loff_t *ppos)
{
	ssize_t done;

	mutex_lock(&lock);
	done = simple_read_from_buffer(ubuf, count, ppos, result, strlen(result));
	mutex_unlock(&lock);
	return done;
}

static const struct proc_ops pn_ops = {
	.proc_read = pn_read,
	.proc_write = pn_write,
};

static int __init pn_init(void)
{
	if (security_locked_down(LOCKDOWN_DEV_MEM)) {
		pr_err("pnhcall: refused: the kernel is locked down (raw hcalls reach the hypervisor like /dev/mem)\n");
		return -EPERM;
	}
	return proc_create("pnhcall", 0600, NULL, &pn_ops) ? 0 : -ENOMEM;
}

static void __exit pn_exit(void)
{
	int i;

	remove_proc_entry("pnhcall", NULL);
	if (lent()) {	/* the L0 may still use them: never handed back to the kernel */
		pr_warn("pnhcall: unloaded with a partition table or %lu guest(s) registered: its buffers are kept\n",
			guests);
		return;
	}
	for (i = 0; i < MAX_BUFFERS; i++)
		release(&buffers[i]);
	release_kept();
}

module_init(pn_init);
module_exit(pn_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Raw hypervisor calls and contiguous buffers through /proc/pnhcall");

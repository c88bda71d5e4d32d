# SPDX-License-Identifier: GPL-2.0
#
# awk -v out=DIR -v meta=FILE -f bench/report.awk RAW
#
# Turns the lines bench/guest.sh printed (RAW) into the Markdown report (on
# stdout) and the gnuplot data files DIR/*.dat. Every figure is the median
# of the repetitions with their min-max; a ratio is computed per repetition
# (the two peers ran side by side in that repetition) and reported as the
# median of those, with their min-max. META holds "key value" lines about
# the run (date, commit, host, QEMU) written by bench/run.
#
# Plain POSIX awk (Debian's mawk): no asort, no gensub.

function kv(line,   i, n, f, a) {
	delete V
	n = split(line, f, " ")
	for (i = 2; i <= n; i++)
		if (index(f[i], "=")) {
			a = substr(f[i], 1, index(f[i], "=") - 1)
			V[a] = substr(f[i], index(f[i], "=") + 1)
		}
}

function param(w) {
	if (w == "w1" || w == "w1q" || w == "w3") return "F=" V["F"]
	if (w == "w2") return "T=" V["T"]
	return "M=" V["F"] " N=" V["N"]
}

function put(cell, metric, rep, v) {
	if (v == "-" || v == "") return
	val[cell, metric, rep] = v + 0
	if (!((cell, metric) in seen)) { seen[cell, metric] = 1 }
	if (!(rep in reps_seen)) { reps_seen[rep] = 1; nrep_list[++nreps] = rep }
}

# Sort S[1..n] in place (insertion sort: n is the number of repetitions).
function sortn(n,   i, j, t) {
	for (i = 2; i <= n; i++) {
		t = S[i]
		for (j = i - 1; j >= 1 && S[j] > t; j--) S[j + 1] = S[j]
		S[j + 1] = t
	}
}

# stats over S[1..n]: sets MED, MIN, MAX; returns n.
function stats(n) {
	if (!n) return 0
	sortn(n)
	MIN = S[1]; MAX = S[n]
	MED = n % 2 ? S[(n + 1) / 2] : (S[n / 2] + S[n / 2 + 1]) / 2
	return n
}

function collect(cell, metric,   i, n) {
	n = 0
	for (i = 1; i <= nreps; i++)
		if ((cell, metric, nrep_list[i]) in val) S[++n] = val[cell, metric, nrep_list[i]]
	return stats(n)
}

# Ratio a/b per repetition where both ran.
function collect_ratio(ca, cb, metric,   i, n, r) {
	n = 0
	for (i = 1; i <= nreps; i++) {
		r = nrep_list[i]
		if ((ca, metric, r) in val && (cb, metric, r) in val && val[cb, metric, r] > 0)
			S[++n] = val[ca, metric, r] / val[cb, metric, r]
	}
	return stats(n)
}

function fmt(x) {
	if (x >= 10000) return sprintf("%.0f", x)
	if (x >= 100) return sprintf("%.0f", x)
	if (x >= 10) return sprintf("%.1f", x)
	if (x >= 1) return sprintf("%.2f", x)
	return sprintf("%.3f", x)
}

# "median (min–max)" of a cell's metric, or n/a / fail.
function show(cell, metric, peer,   n) {
	if (cell in failed_cell) return "**FAIL**"
	n = collect(cell, metric)
	if (!n) return (cell in na_cell) ? "n/a" : "–"
	if (n == 1 || MIN == MAX) return fmt(MED)
	return fmt(MED) " (" fmt(MIN) "–" fmt(MAX) ")"
}

function show_ratio(ca, cb, metric,   n) {
	n = collect_ratio(ca, cb, metric)
	if (!n) return "n/a"
	RATIO = MED
	if (n == 1 || MIN == MAX) return sprintf("%.2f×", MED)
	return sprintf("%.2f× (%.2f–%.2f)", MED, MIN, MAX)
}

function header(first,   i, s) {
	s = "| " first " |"
	for (i = 1; i <= np; i++) s = s " " P[i] " |"
	print s
	s = "|---|"
	for (i = 1; i <= np; i++) s = s "---:|"
	print s
}

# One row per parameter value, one column per peer.
function table(w, plist, pname, metric,   i, j, n, pv, s) {
	n = split(plist, pv, ",")
	header(pname)
	for (j = 1; j <= n; j++) {
		s = "| " pv[j] " |"
		for (i = 1; i <= np; i++)
			s = s " " show(w SUBSEP pv[j] SUBSEP P[i], metric, P[i]) " |"
		print s
	}
	print ""
}

# Gnuplot data: x, then median min max for each peer ("-" if none).
function dat(file, w, plist, xname, metric,   i, j, n, pv, s, x) {
	n = split(plist, pv, ",")
	s = "# " xname
	for (i = 1; i <= np; i++) s = s " " P[i] "_med " P[i] "_min " P[i] "_max"
	print s > file
	for (j = 1; j <= n; j++) {
		x = pv[j]; sub(/.*=/, "", x)
		s = x
		for (i = 1; i <= np; i++)
			if (collect(w SUBSEP pv[j] SUBSEP P[i], metric))
				s = s " " MED " " MIN " " MAX
			else
				s = s " - - -"
		print s > file
	}
	close(file)
}

function w1_section(w, what) {
	print "### " what
	print ""
	print "Commits/s:"
	print ""
	table(w, plist[w], "F", "rate")
	dat(out "/" w ".dat", w, plist[w], "F", "rate")
	print "CPU µs per commit (whole guest):"
	print ""
	table(w, plist[w], "F", "cpu")
	print "Commit latency p50 µs:"
	print ""
	table(w, plist[w], "F", "p50")
	print "Commit latency p99 µs:"
	print ""
	table(w, plist[w], "F", "p99")
	print "Flushes per commit (disk):"
	print ""
	table(w, plist[w], "F", "fpc")
}

function verdict(ok) { return ok ? "**met**" : "**missed**" }

BEGIN {
	np = split("plain glibc libaio uring-link uring-drain aiofsync aiofsync-lib aiofsync-libaio", P, " ")
	# The peers the targets are checked for.
	NW = split("aiofsync aiofsync-lib aiofsync-libaio", WHO, " ")
	if (meta != "")
		while ((getline line < meta) > 0) {
			k = substr(line, 1, index(line, " ") - 1)
			M[k] = substr(line, index(line, " ") + 1)
		}
}

/^INFO / {
	kv($0)
	for (k in V) info[k] = V[k]
	next
}

/^RESULT / {
	kv($0)
	w = V["w"]
	if (w == "w1" && V["Q"] > 1) { w = "w1q"; Q = V["Q"] }
	p = param(w)
	cell = w SUBSEP p SUBSEP V["peer"]
	if (!((w, p) in pseen)) { pseen[w, p] = 1; plist[w] = plist[w] (plist[w] == "" ? "" : ",") p }
	r = V["rep"]
	put(cell, "rate", r, V["rate"])
	put(cell, "cpu", r, V["cpu_us"])
	put(cell, "pcpu", r, V["pcpu_us"])
	put(cell, "fpc", r, V["fpc"])
	put(cell, "p50", r, V["p50_us"])
	put(cell, "p99", r, V["p99_us"])
	if (V["rate"] > 0) put(cell, "wall", r, 1e6 / V["rate"])
	if ("mflushes" in V && V["commits"] > 0) put(cell, "mfpc", r, V["mflushes"] / V["commits"])
	next
}

# NA and FAIL lines carry aiofbench's options (-f F, -t T, -n N) rather
# than its RESULT fields: the cell they stand for.
function cell_of_options(line,   n, f, i, w) {
	kv(line)
	n = split(line, f, " ")
	V["F"] = ""; V["T"] = ""; V["N"] = ""; V["Q"] = 1
	for (i = 1; i < n; i++) {
		if (f[i] == "-q") V["Q"] = f[i + 1]
		if (f[i] == "-f") V["F"] = f[i + 1]
		if (f[i] == "-t") V["T"] = f[i + 1]
		if (f[i] == "-n") V["N"] = f[i + 1]
	}
	w = V["w"]
	if (w == "w1" && V["Q"] > 1) { w = "w1q"; Q = V["Q"] }
	if (w == "fio") return "fio" SUBSEP "fio" SUBSEP V["peer"]
	p = param(w)
	if (!((w, p) in pseen)) { pseen[w, p] = 1; plist[w] = plist[w] (plist[w] == "" ? "" : ",") p }
	return w SUBSEP p SUBSEP V["peer"]
}

/^NA / { na_cell[cell_of_options($0)] = 1; next }

/^FAIL / {
	fails[++nfail] = $0
	failed_cell[cell_of_options($0)] = 1
	next
}

/^FIO / {
	kv($0)
	put("fio" SUBSEP "fio" SUBSEP V["peer"], "rate", V["rep"], V["rate"])
	next
}

/^END / { kv($0); ended = 1; cells = V["cells"]; next }

END {
	smoke = info["smoke"] == 1
	print "# aiofsync benchmark" (smoke ? " (smoke run: tiny sizes, one repetition; not for conclusions)" : "")
	print ""
	print "Run " M["date"] ", commit `" M["commit"] "`, `" M["command"] "`."
	print ""
	print "| | |"
	print "|---|---|"
	print "| guest kernel | " info["kernel"] " (Debian) |"
	print "| filesystem | " info["fs"] " on " info["dev"] " (`" info["opts"] "`), a fresh sparse raw image, virtio-blk, QEMU `cache=writeback` |"
	print "| machine | QEMU " M["qemu"] ", **" M["accel"] "**, " info["cpus"] " vCPUs, " info["mem_mb"] " MiB; host: " M["host"] " |"
	print "| host load | " M["load"] " (1/5/15-min averages; the vCPUs are host threads: a busy host stalls them and inflates the guest's CPU times) |"
	print "| repetitions | " info["reps"] " per cell, " info["secs"] " s each (w4: shorter; it drains N requests at the end); peers interleaved within each repetition |"
	print ""
	if (M["accel"] ~ /tcg/) {
		print "**Emulated (TCG), not a real disk.** Every instruction of the guest is"
		print "translated by QEMU, and each flush the guest sends becomes an fdatasync of"
		print "the image file on the host. Absolute numbers are therefore far from what"
		print "real hardware gives; the point is the ratios between peers measured side"
		print "by side in one boot, and counts such as flushes per commit."
		print ""
	}
	print "Cells show the median of the repetitions and (min–max). CPU is the whole"
	print "guest's time not idle - the wall time of both vCPUs minus the idle and"
	print "iowait of `/proc/stat`, which a NO_HZ kernel measures exactly (kernel"
	print "workers, interrupts, io-wq and the wake-ups from idle included; the"
	print "tick-sampled user and system counters miss short bursts on idle CPUs and"
	print "are in the raw lines as tick_cpu_us) - divided by the commits or requests"
	print "completed; flushes are the"
	print "flush requests completed by the scratch disk (`/sys/block/vda/stat`, field"
	print "16). Ratios are computed per repetition, then the median (min–max) is shown."
	print "A commit is checked when its sync completes: every write returned 4096, the"
	print "sync 0, and a pread of one of its blocks returns the data just written."
	print ""

	# ---- W1 ----
	print "## W1 — ordered commit"
	print ""
	print "F files; a commit is 4 writes of 4 KiB appended to one file, then an fsync"
	print "that must cover them. Asynchronous peers drive every stream of commits from"
	print "one thread; plain uses one thread per file."
	print ""
	w1_section("w1", "one commit in flight per file (the next commit of a file starts when the last completed)")
	if (plist["w1q"] != "")
		w1_section("w1q", Q " commits in flight per file (each fsync ordered behind its own writes only; plain has no way to do this: n/a)")

	# ---- W2 ----
	print "## W2 — group commit"
	print ""
	print "T threads each append 4 KiB to ONE shared file (one descriptor) and sync it,"
	print "one commit in flight per thread; each thread has its own context or ring."
	print ""
	print "Commits/s:"
	print ""
	table("w2", plist["w2"], "T", "rate")
	dat(out "/w2.dat", "w2", plist["w2"], "T", "rate")
	print "Flushes per commit (disk):"
	print ""
	table("w2", plist["w2"], "T", "fpc")
	dat(out "/w2f.dat", "w2", plist["w2"], "T", "fpc")
	print "CPU µs per commit:"
	print ""
	table("w2", plist["w2"], "T", "cpu")

	# ---- W3 ----
	print "## W3 — overhead: fsync of clean files"
	print ""
	print "One request at a time, cycling over 16 files that are already clean: the"
	print "cost of submit, order and complete (on ext4 a clean fsync still sends a"
	print "flush to the disk)."
	print ""
	print "| peer | CPU µs/request | p50 µs | p99 µs | requests/s | flushes/request |"
	print "|---|---:|---:|---:|---:|---:|"
	split(plist["w3"], w3p, ",")
	for (i = 1; i <= np; i++) {
		c = "w3" SUBSEP w3p[1] SUBSEP P[i]
		print "| " P[i] " | " show(c, "cpu") " | " show(c, "p50") " | " show(c, "p99") " | " show(c, "rate") " | " show(c, "fpc") " |"
		if (collect(c, "cpu")) { w3cpu[P[i]] = MED; w3n++ }
	}
	print ""
	f3 = out "/w3.dat"
	print "# peer cpu_med cpu_min cpu_max" > f3
	for (i = 1; i <= np; i++)
		if (collect("w3" SUBSEP w3p[1] SUBSEP P[i], "cpu")) print P[i] " " MED " " MIN " " MAX > f3
	close(f3)

	# ---- W4 ----
	print "## W4 — scale: N requests in flight"
	print ""
	print "N streams of fsyncs of clean files, spread over M files, N in flight at all"
	print "times (a closed loop); plain has no requests in flight (n/a)."
	print ""
	nw4 = split(plist["w4"], w4p, ",")
	nm = 0
	for (j = 1; j <= nw4; j++) {
		m = w4p[j]; sub(/ .*/, "", m)
		if (!(m in mseen)) { mseen[m] = 1; ms[++nm] = m; mlist[m] = "" }
		mlist[m] = mlist[m] (mlist[m] == "" ? "" : ",") w4p[j]
	}
	for (k = 1; k <= nm; k++) {
		m = ms[k]
		print "CPU µs per request, " m " file(s):"
		print ""
		table("w4", mlist[m], "M N", "cpu")
		mm = m; sub(/M=/, "", mm)
		dat(out "/w4-" mm ".dat", "w4", mlist[m], "N", "cpu")
		print "Wall µs per request (1 / throughput), " m " file(s):"
		print ""
		table("w4", mlist[m], "M N", "wall")
		print "Flushes per request, " m " file(s):"
		print ""
		table("w4", mlist[m], "M N", "fpc")
	}

	# ---- fio ----
	print "## fio"
	print ""
	print "`fio --rw=write --bs=4k --fsync=1 --iodepth=4`, commits/s (= writes/s). The"
	print "posixaio engine with glibc, and with `LD_PRELOAD` of libaiofsync; libaio"
	print "and io_uring engines for reference only: fio 3.33's libaio engine drains and"
	print "then calls fsync(2), its io_uring engine does not order the fsync behind the"
	print "writes in flight."
	print ""
	print "| fio run | commits/s |"
	print "|---|---:|"
	nf = split("glibc aiofsync-lib libaio io_uring", FP, " ")
	for (i = 1; i <= nf; i++)
		print "| " (FP[i] == "glibc" || FP[i] == "aiofsync-lib" ? "posixaio, " FP[i] : FP[i]) " | " show("fio" SUBSEP "fio" SUBSEP FP[i], "rate") " |"
	print ""

	# ---- targets ----
	print "## Targets"
	print ""
	print "| target | measured | |"
	print "|---|---|---|"
	for (wq = 1; wq <= 2; wq++) {
		w = wq == 1 ? "w1" : "w1q"
		wn = wq == 1 ? "W1" : "W1 (Q=" Q ")"
		n1 = split(plist[w], w1p, ",")
		for (tp = 1; tp <= NW; tp++) {
			who = WHO[tp]
			for (j = 1; j <= n1; j++) {
				a = w SUBSEP w1p[j] SUBSEP who
				if (!collect(a, "rate")) {
					print "| " wn " " w1p[j] ": " who " ≥1.5× glibc, ≥1.0× uring-link commits/s | " ((a in failed_cell) ? "FAIL" : "n/a") " | – |"
					continue
				}
				s1 = show_ratio(a, w SUBSEP w1p[j] SUBSEP "glibc", "rate"); r1 = RATIO
				s2 = show_ratio(a, w SUBSEP w1p[j] SUBSEP "uring-link", "rate"); r2 = RATIO
				print "| " wn " " w1p[j] ": " who " ≥1.5× glibc, ≥1.0× uring-link commits/s | " s1 " glibc, " s2 " uring-link | " verdict(r1 >= 1.5 && r2 >= 1.0) " |"
			}
		}
	}
	n2 = split(plist["w2"], w2p, ",")
	for (tp = 1; tp <= NW; tp++) {
		who = WHO[tp]
		for (j = 1; j <= n2; j++) {
			if (w2p[j] != "T=16" && w2p[j] != "T=64") continue
			a = "w2" SUBSEP w2p[j] SUBSEP who
			if (!collect(a, "fpc")) {
				print "| W2 " w2p[j] ": " who " ≤0.3 flushes/commit, ≥3× glibc commits/s | " ((a in failed_cell) ? "FAIL" : "n/a") " | – |"
				continue
			}
			fpcm = MED
			s1 = show_ratio(a, "w2" SUBSEP w2p[j] SUBSEP "glibc", "rate"); r1 = RATIO
			print "| W2 " w2p[j] ": " who " ≤0.3 flushes/commit, ≥3× glibc commits/s | " sprintf("%.3f", fpcm) " flushes/commit, " s1 " glibc | " verdict(fpcm <= 0.3 && r1 >= 3) " |"
		}
	}
	for (tp = 1; tp <= NW; tp++) {
		who = WHO[tp]
		a = "w3" SUBSEP w3p[1] SUBSEP who
		if (!collect(a, "cpu")) {
			print "| W3: " who " CPU/request ≤1.5× uring-link | " ((a in failed_cell) ? "FAIL" : "n/a") " | – |"
			continue
		}
		s1 = show_ratio(a, "w3" SUBSEP w3p[1] SUBSEP "uring-link", "cpu"); r1 = RATIO
		print "| W3: " who " CPU/request ≤1.5× uring-link | " s1 " | " verdict(r1 <= 1.5) " |"
	}
	for (tp = 1; tp <= NW; tp++) {
		who = WHO[tp]
		for (k = 1; k <= nm; k++) {
			m = ms[k]
			nn = split(mlist[m], mp, ",")
			lo = ""; hi = ""; s = ""; nv4 = 0
			for (j = 1; j <= nn; j++) {
				if (!collect("w4" SUBSEP mp[j] SUBSEP who, "cpu")) continue
				nv = mp[j]; sub(/.*N=/, "", nv)
				s = s (s == "" ? "" : ", ") "N=" nv ": " fmt(MED)
				nv4++
				if (lo == "" || MED < lo) lo = MED
				if (hi == "" || MED > hi) hi = MED
				if (j == 1) first = MED
				last = MED
			}
			if (nv4 < 2) {
				print "| W4 " m ": " who " CPU/request within 25% from N=1 to 10000 | " (s == "" ? "n/a" : s " µs (one N only)") " | – |"
				continue
			}
			# Literal: max/min < 1.25. A cost that falls as N grows misses
			# it as well: say so, and how N=10000 compares with the lowest.
			note = last <= lo ? " (falls as N grows: N=10000 is the cheapest)" : sprintf(" (N=10000 is %.2f× the lowest)", last / lo)
			print "| W4 " m ": " who " CPU/request within 25% from N=1 to 10000 | " s " µs, max/min " sprintf("%.2f", hi / lo) " | " verdict(hi / lo < 1.25) note " |"
		}
	}
	print ""

	if (nfail) {
		print "## Failures"
		print ""
		for (i = 1; i <= nfail; i++) print "    " substr(fails[i], 1, 400)
		print ""
	}
	if (!ended) {
		print "**The run did not finish** (no END line from the guest): the tables are partial."
		print ""
	}
}

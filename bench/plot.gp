# SPDX-License-Identifier: GPL-2.0
#
# gnuplot -e "dir='RESULTS_DIR'" bench/plot.gp
#
# The plots of one run, from the .dat files bench/report.awk wrote: each
# peer's median with its min-max as error bars. Columns of a .dat file: x,
# then median min max for each peer in the order below.

peers = "plain glibc libaio uring-link uring-drain aiofsync aiofsync-lib aiofsync-libaio"
np = words(peers)
set datafile missing "-"
set terminal pngcairo size 900,560 font "sans,10"
set key outside right top
set grid
set logscale x 2
set style data yerrorlines
set pointsize 1.2

# Column of the median of peer i.
med(i) = 2 + 3 * (i - 1)

set output dir."/w1.png"
set multiplot layout 1,2 title "W1 ordered commit: commits/s vs files (4 writes + fsync per commit)"
set xlabel "files F"
set ylabel "commits/s"
set logscale y
set key inside left top font ",8"
set title "one commit in flight per file"
plot for [i=1:np] dir."/w1.dat" using 1:med(i):(column(med(i)+1)):(column(med(i)+2)) title word(peers, i)
if (system("test -s '".dir."/w1q.dat' && echo y") eq "y") {
	set title "several commits in flight per file"
	plot for [i=1:np] dir."/w1q.dat" using 1:med(i):(column(med(i)+1)):(column(med(i)+2)) title word(peers, i)
}
unset multiplot

set output dir."/w2.png"
set multiplot layout 1,2 title "W2 group commit: T threads appending to one file, write + fsync each"
set title "commits/s"
set xlabel "threads T"
set ylabel "commits/s"
set key inside left top font ",8"
plot for [i=1:np] dir."/w2.dat" using 1:med(i):(column(med(i)+1)):(column(med(i)+2)) title word(peers, i)
set title "flushes per commit (disk)"
set ylabel "flushes / commit"
unset logscale y
set yrange [0:*]
plot for [i=1:np] dir."/w2f.dat" using 1:med(i):(column(med(i)+1)):(column(med(i)+2)) title word(peers, i)
unset multiplot
set autoscale y
set key outside right top font ",10"

set output dir."/w4.png"
set multiplot layout 1,2 title "W4 scale: CPU µs per request (whole guest) vs requests in flight"
set logscale y
set xlabel "requests in flight N"
set ylabel "CPU µs / request"
set logscale x 10
set key inside right top font ",8"
# A smoke run has only M=1.
do for [m in "1 1000"] {
	f = dir."/w4-".m.".dat"
	if (system("test -s '".f."' && echo y") eq "y") {
		set title "over ".m." file(s)"
		plot for [i=1:np] f using 1:med(i):(column(med(i)+1)):(column(med(i)+2)) title word(peers, i)
	}
}
unset multiplot

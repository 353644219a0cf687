# plot.gp: the PNG of `make bench-kernel` (tests/bench/kernel/report.py writes the data).
#   gnuplot -e "dir='build/bench/kernel/plot'; out='build/bench/bench-kernel.png'" tests/bench/kernel/plot.gp
# One panel per workload: per configuration the throughput ratio to the no-module runs (median,
# bars from the slowest to the fastest run), module and bpftrace on the same probe points side by
# side; lines at 1.0 (no cost) and 0.9; the grey band is the run's noise floor (the middle half of
# the baseline blocks, each compared with its neighbours as a configuration is).
if (!exists("dir")) dir = 'build/bench/kernel/plot'
if (!exists("out")) out = 'build/bench/bench-kernel.png'
set terminal pngcairo size 1500,1000 font ",10"
set output out
set multiplot layout 3,1 title "collectd-stap modules vs bpftrace counting on the same probe points: throughput / no-module throughput (same VM boot)"
set style data histograms
set style histogram errorbars gap 2 lw 1
set style fill solid 0.7 border -1
set yrange [0:1.6]
set ytics 0.2
set grid ytics
set key outside top right horizontal
set bars 0.5
set datafile missing "NaN"
set arrow 1 from graph 0, first 1.0 to graph 1, first 1.0 nohead dt 2 lc rgb '#555555'
set arrow 2 from graph 0, first 0.9 to graph 1, first 0.9 nohead dt 3 lc rgb '#999999'
workloads = "bulk rr udp"
stats dir.'/bulk.dat' using (1) nooutput
set xrange [-0.6:STATS_records - 0.4]
titles = "'bulk TCP (64 KiB writes)' '64-byte TCP request/response' '64-byte UDP (received)'"
load dir.'/noise.gp'
do for [i=1:3] {
  w = word(workloads, i)
  set title word(titles, i)
  lo = value('noise_lo_'.w)
  hi = value('noise_hi_'.w)
  set object 1 rect from graph 0, first lo to graph 1, first hi fc rgb '#e0e0e0' fs solid 1.0 noborder behind
  plot dir.'/'.w.'.dat' using 2:3:4:xtic(1) title 'module (staprun)' lc rgb '#c0392b', \
       '' using 5:6:7 title 'bpftrace count()' lc rgb '#2471a3'
}
unset multiplot

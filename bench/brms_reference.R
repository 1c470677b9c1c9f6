#!/usr/bin/env Rscript
# Peer baseline for the speed benchmarks: brms/Stan (rstan backend) on a CSV with columns
# time, event, arm, site [, patient_id]. Prints one JSON line: compile and sampling seconds,
# divergences, max R-hat, min bulk ESS and the arm coefficient's posterior mean/sd.
#   Rscript bench/brms_reference.R data.csv weibull_site|lr_frailty [draws] [adapt_delta]
# Needs Debian's r-cran-brms (apt-get install r-cran-brms r-cran-survival).
suppressPackageStartupMessages({library(brms); library(jsonlite)})
if (system.file("include", package = "BH") == "")
  stop("Debian's r-cran-bh has no include/ folder (Boost is in /usr/include); fix with ",
       "ln -s /usr/include /usr/lib/R/site-library/BH/include")
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1])
kind <- args[2]
draws <- if (length(args) >= 3) as.integer(args[3]) else 1000L
adapt_delta <- if (length(args) >= 4) as.numeric(args[4]) else 0.8
data$arm <- factor(data$arm)
form <- switch(kind,
  weibull_site = bf(time | cens(1 - event) ~ arm + (1 | site)),
  lr_frailty = bf(time | cens(1 - event) ~ arm + (1 | site) + (1 | patient_id)),
  stop("kind must be weibull_site or lr_frailty"))
t0 <- proc.time()[["elapsed"]]
fit0 <- brm(form, data = data, family = weibull(), chains = 0, backend = "rstan",
            silent = 2, refresh = 0)
t1 <- proc.time()[["elapsed"]]
fit <- update(fit0, recompile = FALSE, chains = 4, cores = 2, iter = 2 * draws,
              warmup = draws, seed = 1, control = list(adapt_delta = adapt_delta),
              silent = 2, refresh = 0)
t2 <- proc.time()[["elapsed"]]
np <- nuts_params(fit)
divergences <- sum(np$Value[np$Parameter == "divergent__"])
s <- summary(fit)
fixed <- s$fixed
arm_row <- grep("^arm", rownames(fixed))[1]
rhat <- max(rhat(fit), na.rm = TRUE)
ess <- min(c(fixed$Bulk_ESS, unlist(lapply(s$random, function(r) r$Bulk_ESS))), na.rm = TRUE)
# the Weibull family of brms is parameterised by the mean: coef_mean is on log time,
# log HR = -shape * coef_mean
cat(toJSON(list(compile_seconds = t1 - t0, sampling_seconds = t2 - t1,
                divergences = divergences, rhat_max = rhat, ess_bulk_min = ess,
                coef_mean = fixed$Estimate[arm_row], coef_sd = fixed$Est.Error[arm_row],
                shape = s$spec_pars["shape", "Estimate"]),
           auto_unbox = TRUE, digits = 6), "\n")

document.addEventListener('DOMContentLoaded', function () {
  document.body.classList.add('ready');
});
